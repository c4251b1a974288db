# Build the Windows bundle (one folder: the windowed prismq-desktop.exe and the console
# prismq-desktop-cli.exe), check it, and build the installer with Inno Setup.
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
#
# Fails (exit code non-zero) when any step fails. $ErrorActionPreference = "Stop" covers cmdlets
# only: a native program's exit code is not an error in Windows PowerShell 5.1 (about_Preference_
# Variables: $PSNativeCommandUseErrorActionPreference exists only from PowerShell 7.3), so every
# native call is followed by Assert-Exit, which reads $LASTEXITCODE (about_Automatic_Variables) and
# exits with it - `powershell -File` otherwise exits 0 whenever the script runs to its end
# (about_PowerShell_exe, -File: the exit code is the script's `exit` value).
#   PRISMQ_PYTHON: the Python that makes the build venv (default: py -3.11, else python).
#   PRISMQ_REQUIRE_INSTALLER=1: a missing Inno Setup is an error (CI), not a note.
$ErrorActionPreference = "Stop"

function Assert-Exit([string]$what) {
    if ($LASTEXITCODE -ne 0) {
        Write-Host "build.ps1: $what failed (exit code $LASTEXITCODE)"
        exit $LASTEXITCODE
    }
}

Set-Location (Join-Path $PSScriptRoot "..\..")
if ($env:PRISMQ_PYTHON) { $py = @($env:PRISMQ_PYTHON) }
elseif (Get-Command py -ErrorAction SilentlyContinue) { $py = @("py", "-3.11") }
else { $py = @("python") }
$pyExe = $py[0]
$pyArgs = @($py | Select-Object -Skip 1)

& $pyExe @pyArgs -m venv .venv-build; Assert-Exit "creating the build venv"
$vpy = ".venv-build\Scripts\python.exe"
& $vpy -m pip install --upgrade pip; Assert-Exit "pip upgrade"
& $vpy -m pip install -e ".[gui]" pyinstaller pillow; Assert-Exit "installing the app and PyInstaller"
& $vpy -c "from PIL import Image; Image.open('prismq_desktop/resources/prismq.png').save('prismq_desktop/resources/prismq.ico', sizes=[(16,16),(32,32),(48,48),(256,256)])"
Assert-Exit "making the icon"
& $vpy -m PyInstaller --noconfirm --distpath dist --workpath build packaging\prismq-desktop.spec; Assert-Exit "PyInstaller"

# The bundle check: both EXEs exist; the console one runs a script with a real Python and finds
# it in the history (the windowed one has no stdout to print to).
$app = "dist\prismq-desktop"
foreach ($exe in @("prismq-desktop.exe", "prismq-desktop-cli.exe")) {
    if (-not (Test-Path (Join-Path $app $exe))) { Write-Host "build.ps1: $exe is missing from $app"; exit 1 }
}
$home_ = Join-Path $env:RUNNER_TEMP "prismq-bundle-home"
if (-not $env:RUNNER_TEMP) { $home_ = Join-Path $env:TEMP "prismq-bundle-home" }
$hello = Join-Path $env:TEMP "prismq-hello.py"
Set-Content -Path $hello -Value 'import sys; print("hello from", sys.executable)' -Encoding ascii
$out = & "$app\prismq-desktop-cli.exe" --data-dir $home_ run $hello; Assert-Exit "the bundled CLI running a script"
if (-not ($out -match "hello from")) { Write-Host "build.ps1: the bundled CLI printed: $out"; exit 1 }
$hist = & "$app\prismq-desktop-cli.exe" --data-dir $home_ history --json; Assert-Exit "the bundled CLI's history --json"
$runs = ($hist | Out-String | ConvertFrom-Json)  # assigned first: 5.1 passes a JSON array as one object
if (-not @($runs | Where-Object { $_.name -eq "prismq-hello.py" -and $_.outcome -eq "succeeded" })) {
    Write-Host "build.ps1: the run is not in the history: $hist"; exit 1
}
# fire-and-forget from the frozen app: the detached process is the bundle's own EXE (never -m)
$ff = & "$app\prismq-desktop-cli.exe" --data-dir $home_ run --pattern fire_and_forget $hello; Assert-Exit "a fire-and-forget run"
if (-not ($ff -match "started in the background")) { Write-Host "build.ps1: fire-and-forget printed: $ff"; exit 1 }
$done = $false
for ($i = 0; $i -lt 100 -and -not $done; $i++) {
    $hist = & "$app\prismq-desktop-cli.exe" --data-dir $home_ history --json; Assert-Exit "history --json"
    $all = ($hist | Out-String | ConvertFrom-Json)  # assigned first: 5.1 passes a JSON array as one object
    $ok = @($all | Where-Object { $_.name -eq "prismq-hello.py" -and $_.outcome -eq "succeeded" })
    if ($ok.Count -ge 2) { $done = $true } else { Start-Sleep -Milliseconds 200 }
}
if (-not $done) { Write-Host "build.ps1: the fire-and-forget run never succeeded: $hist"; exit 1 }
Write-Host "bundle check passed"

$version = & $vpy -c "import prismq_desktop; print(prismq_desktop.__version__)"; Assert-Exit "reading the version"
$iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
if (Test-Path $iscc) {
    & $iscc "/DAppVersion=$version" packaging\windows\installer.iss; Assert-Exit "Inno Setup (ISCC)"
} elseif ($env:PRISMQ_REQUIRE_INSTALLER -eq "1") {
    Write-Host "build.ps1: Inno Setup not found at $iscc"; exit 1
} else {
    Write-Host "Inno Setup not found: the bundle is in dist\prismq-desktop"
}
exit 0
