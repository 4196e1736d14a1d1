#!/usr/bin/env bash
# Builds the solution and runs every test project. Needs only the .NET 10 SDK.
# Tests run on Microsoft.Testing.Platform (global.json opts dotnet test into it).
set -euo pipefail
cd "$(dirname "$0")"
dotnet build NestedSmmu.slnx -c Release --nologo -v quiet
dotnet test --solution NestedSmmu.slnx -c Release --no-build "$@"
