# Build the Windows bundle (one folder, windowed) and, if Inno Setup is installed, the installer.
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
py -3.11 -m venv .venv
.venv\Scripts\python -m pip install --upgrade pip
.venv\Scripts\python -m pip install -e ".[gui]" pyinstaller pillow
.venv\Scripts\python -c "from PIL import Image; Image.open('prismq_desktop/resources/prismq.png').save('prismq_desktop/resources/prismq.ico', sizes=[(16,16),(32,32),(48,48),(256,256)])"
.venv\Scripts\pyinstaller --noconfirm --distpath dist --workpath build packaging\prismq-desktop.spec
$version = .venv\Scripts\python -c "import prismq_desktop; print(prismq_desktop.__version__)"
$iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
if (Test-Path $iscc) { & $iscc "/DAppVersion=$version" packaging\windows\installer.iss }
else { Write-Host "Inno Setup not found: the bundle is in dist\prismq-desktop" }
