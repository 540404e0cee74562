#!/usr/bin/env bash
# tools.sh builds the pinned tools this project needs (crossplane CLI and core, etcd,
# kube-apiserver & co, kwok) from the Go module proxy into a cache outside the clone,
# keyed by the hash of each tool module's go.mod and go.sum, and prints the bin dir.
#
#   hack/tools.sh crossplane|core|etcd|kube|kwok|kubectl|golangci-lint|versitygw -> prints the tool's bin directory
#   hack/tools.sh path                              -> every tool's bin directory, ':'-joined
#
# REDISHTTP_CACHE overrides the cache root (default ~/.cache/redishttp).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${REDISHTTP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/redishttp}/tools"
KUBE_VERSION=v1.36.3

# A tool's recipe revision, part of its cache key: bump it when the build commands
# below change, so cached binaries are rebuilt.
declare -A recipe=(
	[core]="version-ldflags" # core reports its version; packages' Crossplane constraints need it
	[kwok]="stage-documents" # one YAML document per stage file
	[kubectl]="version-ldflags" # kubectl version reports v1.36.3
)

key() {
	{
		cat "$root/hack/tools/$1/go.mod" "$root/hack/tools/$1/go.sum"
		if [[ -n "${recipe[$1]:-}" ]]; then echo "${recipe[$1]}"; fi
	} | sha256sum | cut -c1-12
}

build() {
	local name="$1" dir="$root/hack/tools/$1" out
	out="$cache/$name-$(key "$name")"
	if [[ -f "$out/.done" ]]; then echo "$out/bin"; return; fi
	mkdir -p "$out/bin"
	echo "building $name into $out (cold builds take minutes)" >&2
	(
		cd "$dir"
		export GOFLAGS=-mod=mod
		case "$name" in
		crossplane) go build -o "$out/bin/crossplane" github.com/crossplane/cli/v2/cmd/crossplane ;;
		core)
			local cv
			cv="$(go list -m -f '{{.Version}}' github.com/crossplane/crossplane/v2)"
			# Without the version, core rejects every package that declares a
			# spec.crossplane.version constraint.
			go build -ldflags "-X github.com/crossplane/crossplane-runtime/v2/pkg/version.version=$cv" \
				-o "$out/bin/crossplane-core" github.com/crossplane/crossplane/v2/cmd/crossplane
			# render's offline validation and the local control plane need core's CRDs.
			local mod
			mod="$(go list -m -f '{{.Dir}}' github.com/crossplane/crossplane/v2)"
			rm -rf "$out/crds" && cp -r "$mod/cluster/crds" "$out/crds" && chmod -R u+w "$out/crds"
			;;
		etcd) go build -o "$out/bin/etcd" . ;;
		kubectl)
			local v=k8s.io/component-base/version
			go build -ldflags "-X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=36 -X $v.gitTreeState=clean" -o "$out/bin/kubectl" .
			;;
		kube)
			local v=k8s.io/component-base/version
			local ld="-X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=36 -X $v.gitTreeState=clean"
			for c in kube-apiserver kube-controller-manager kube-scheduler; do
				go build -ldflags "$ld" -o "$out/bin/$c" "k8s.io/kubernetes/cmd/$c"
			done
			;;
		kwok)
			go build -o "$out/bin/kwok" sigs.k8s.io/kwok/cmd/kwok
			local mod
			mod="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
			rm -rf "$out/stages" && mkdir -p "$out/stages"
			# One document per stage file (skipping the kustomizations): files
			# joined without separators merge into one, and pod-delete is lost.
			local f
			for s in node/fast node/heartbeat-with-lease pod/fast; do
				for f in "$mod"/kustomize/stage/$s/*.yaml; do
					[[ "$(basename "$f")" == kustomization.yaml ]] && continue
					cat "$f" >>"$out/stages/stages.yaml"
					echo "---" >>"$out/stages/stages.yaml"
				done
			done
			;;
		golangci-lint) go build -o "$out/bin/golangci-lint" github.com/golangci/golangci-lint/v2/cmd/golangci-lint ;;
		# A real S3 server (posix backend) for the backup tests.
		versitygw) go build -o "$out/bin/versitygw" github.com/versity/versitygw/cmd/versitygw ;;
		*) echo "unknown tool $name" >&2; exit 2 ;;
		esac
	)
	touch "$out/.done"
	echo "$out/bin"
}

if [[ "${1:-}" == path ]]; then
	# Every tool's bin directory, built if missing, as one PATH-like list.
	dirs=()
	for t in crossplane core etcd kube kwok kubectl versitygw; do dirs+=("$(build "$t")"); done
	(IFS=:; echo "${dirs[*]}")
elif [[ "${1:-}" == all ]]; then
	for t in crossplane core etcd kube kwok kubectl versitygw; do build "$t"; done
else
	build "${1:?usage: tools.sh crossplane|core|etcd|kube|kwok|kubectl|golangci-lint|versitygw|path|all}"
fi
