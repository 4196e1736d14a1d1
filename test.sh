#!/usr/bin/env bash
# Builds the solution and runs every test project. Needs only the .NET 10 SDK.
set -euo pipefail
cd "$(dirname "$0")"
dotnet build NestedSmmu.slnx -c Release --nologo -v quiet
dotnet test NestedSmmu.slnx -c Release --no-build --nologo "$@"
