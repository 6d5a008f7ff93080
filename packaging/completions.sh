#!/bin/sh
# Writes shell completions to completions/ for the archives and the deb/rpm
# packages (a goreleaser before hook; run from the repository root).
set -e

rm -rf completions
mkdir completions
for sh in bash zsh fish; do
	go run . completion "$sh" >"completions/xgw.$sh"
done
