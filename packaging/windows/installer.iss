; Inno Setup script for PrismQ Desktop (per-user install, no admin rights needed).
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
[Setup]
AppId={{6F0B7C2E-4F3A-4C62-9C0B-5D1E2A7B9A41}
AppName=PrismQ Desktop
AppVersion={#AppVersion}
DefaultDirName={localappdata}\Programs\PrismQ Desktop
DefaultGroupName=PrismQ Desktop
PrivilegesRequired=lowest
OutputDir=..\..\dist
OutputBaseFilename=PrismQ-Desktop-{#AppVersion}-setup
SetupIconFile=..\..\prismq_desktop\resources\prismq.ico
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
; The app holds this mutex while it runs (gui/app.py, winjob.hold_mutex): Setup and Uninstall
; refuse to replace files in use and ask to close it (Inno Setup docs, [Setup]: AppMutex).
AppMutex=PrismQDesktopRunning

[InstallDelete]
; An upgrade must not keep files the new version no longer ships (an old DLL in _internal would
; be loaded instead of nothing): the bundle's folder is removed before [Files] are installed
; (Inno Setup docs, [InstallDelete] section: processed before [Files]).
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "..\..\dist\prismq-desktop\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\PrismQ Desktop"; Filename: "{app}\prismq-desktop.exe"
; the command line is {app}\prismq-desktop-cli.exe (a console EXE: the windowed one has no stdout)
Name: "{userdesktop}\PrismQ Desktop"; Filename: "{app}\prismq-desktop.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
Filename: "{app}\prismq-desktop.exe"; Description: "Start PrismQ Desktop"; Flags: nowait postinstall skipifsilent
