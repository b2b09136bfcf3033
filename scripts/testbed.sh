#!/usr/bin/env bash
# Build and cache the binaries of the integration-test control plane:
# kube-apiserver, etcd and helm, compiled from their Go modules.
#
# Usage:
#   scripts/testbed.sh              build what is missing, then print the bin dir
#   scripts/testbed.sh --print-bin  print the bin dir without building; exit 1 if
#                                   the binaries are missing or report other versions
#
# The binaries go to ${LOGSTREAM_TESTBED_CACHE:-$HOME/.cache/logstream-kube/testbed}/<tag>/bin,
# outside the repository. The last line on stdout is always the bin dir, so callers can
# run BIN=$(scripts/testbed.sh | tail -1). Progress goes to stderr.
#
# kube-apiserver is built like this: a throwaway Go module requires k8s.io/kubernetes
# at the pinned release and replaces each k8s.io staging module with its published
# v0.MINOR.PATCH module. The replace list is read from that release's own go.mod, so
# it follows whatever staging modules the release has.
#
# Environment:
#   LOGSTREAM_TESTBED_CACHE        cache root (default above)
#   LOGSTREAM_TESTBED_K8S_VERSION  build only this k8s.io/kubernetes version
#                                  (default: try v1.34.4, then v1.34.3, then v1.36.3)
set -euo pipefail

# Pinned versions. The kube-apiserver candidates are tried in order: a later one is
# used only when the earlier ones fail to build.
K8S_CANDIDATES=(v1.34.4 v1.34.3 v1.36.3)
ETCD_VERSION=v3.6.16
HELM_VERSION=v4.3.2

CACHE_ROOT="${LOGSTREAM_TESTBED_CACHE:-$HOME/.cache/logstream-kube/testbed}"
if [[ -n "${LOGSTREAM_TESTBED_K8S_VERSION:-}" ]]; then
  K8S_CANDIDATES=("$LOGSTREAM_TESTBED_K8S_VERSION")
fi

# Module builds must not switch toolchains or stamp VCS data from a temp dir.
export GOTOOLCHAIN=local
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"

log() {
  printf 'testbed: %s\n' "$*" >&2
}

die() {
  log "error: $*"
  exit 1
}

bin_dir_for() {
  local k8s_version="$1"
  printf '%s/k8s-%s_etcd-%s_helm-%s/bin' "$CACHE_ROOT" "$k8s_version" "$ETCD_VERSION" "$HELM_VERSION"
}

# Succeed when $1/kube-apiserver reports Kubernetes $2.
apiserver_ok() {
  local bin="$1" version="$2"
  [[ -x "$bin/kube-apiserver" ]] || return 1
  [[ "$("$bin/kube-apiserver" --version 2>/dev/null)" == "Kubernetes $version" ]]
}

etcd_ok() {
  local bin="$1"
  [[ -x "$bin/etcd" ]] || return 1
  "$bin/etcd" --version 2>/dev/null | grep -qx "etcd Version: ${ETCD_VERSION#v}"
}

helm_ok() {
  local bin="$1"
  [[ -x "$bin/helm" ]] || return 1
  [[ "$("$bin/helm" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]
}

bin_complete() {
  local bin="$1" k8s_version="$2"
  apiserver_ok "$bin" "$k8s_version" && etcd_ok "$bin" && helm_ok "$bin"
}

# Print the bin dir of the first candidate whose three binaries report the pinned versions.
find_built_bin() {
  local version bin
  for version in "${K8S_CANDIDATES[@]}"; do
    bin="$(bin_dir_for "$version")"
    if bin_complete "$bin" "$version"; then
      printf '%s\n' "$bin"
      return 0
    fi
  done
  return 1
}

# Create an empty throwaway module in a new temp dir and print its path.
# The go directive and godebug lines come from the caller ($2, may be empty).
new_module_dir() {
  local name="$1" header="$2" dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/logstream-testbed-$name.XXXXXX")"
  {
    printf 'module logstream.invalid/testbed-%s\n\n' "$name"
    if [[ -n "$header" ]]; then
      printf '%s\n' "$header"
    else
      printf 'go 1.24.0\n'
    fi
  } >"$dir/go.mod"
  printf '%s\n' "$dir"
}

# Print the `go` directive and `godebug` lines of a go.mod file, so the throwaway
# module builds with the same language version and GODEBUG defaults as the release.
go_header_of() {
  grep -E '^(go|godebug) ' "$1" || true
}

# Print one "replace MODULE => MODULE v0.MINOR.PATCH" line for every staging
# replacement ("k8s.io/x => ./staging/src/k8s.io/x") in the go.mod file $1.
# Both the block form and the single-line form of replace are recognized.
staging_replaces() {
  local gomod="$1" k8s_version="$2" published
  # Staging modules are published as v0.MINOR.PATCH for Kubernetes v1.MINOR.PATCH.
  published="v0.${k8s_version#v1.}"
  sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*$#\2#p' "$gomod" |
    while read -r module; do
      printf 'replace %s => %s %s\n' "$module" "$module" "$published"
    done
}

# Print the path of the go.mod file of module $1 at version $2, downloading it.
module_gomod() {
  local json
  if ! json="$(go mod download -json "$1@$2")"; then
    # On failure the JSON record carries the reason in its "Error" field.
    log "go mod download $1@$2 failed: $(sed -nE 's/^[[:space:]]*"Error": "(.*)",?$/\1/p' <<<"$json")"
    return 1
  fi
  sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p' <<<"$json"
}

# Print the publish time of module $1 at version $2 from the proxy's .info record.
module_time() {
  go list -m -json "$1@$2" 2>/dev/null | sed -nE 's/^[[:space:]]*"Time": "(.*)",?$/\1/p'
}

# Fetch package $2 of module $1 at $3 into the throwaway module $4 and build it to $5.
build_in_module() {
  local module="$1" package="$2" version="$3" dir="$4" output="$5"
  shift 5
  # The && chain matters: callers run this in a condition, where set -e is off.
  # Remaining arguments are extra `go build` flags such as -ldflags.
  (cd "$dir" &&
    go get "$package@$version" >&2 &&
    go build "$@" -o "$output.tmp" "$package" >&2) || return 1
  mv -f "$output.tmp" "$output"
}

# Build kube-apiserver $1 into dir $2. Returns non-zero when the build fails.
build_apiserver() {
  local version="$1" bin="$2" gomod header replaces dir minor build_date ldflags
  gomod="$(module_gomod k8s.io/kubernetes "$version")" || return 1
  [[ -s "$gomod" ]] || return 1
  header="$(go_header_of "$gomod")"
  replaces="$(staging_replaces "$gomod" "$version")"
  [[ -n "$replaces" ]] || { log "no staging replace lines found in $gomod"; return 1; }
  log "kube-apiserver $version: $(wc -l <<<"$replaces") staging modules replaced by published versions"

  dir="$(new_module_dir kube-apiserver "$header")"
  printf '\n%s\n' "$replaces" >>"$dir/go.mod"

  # Fill what hack/lib/version.sh would stamp from git, so /version reports the release.
  # The module zip has no git data: gitCommit stays empty and buildDate is the release
  # time recorded by the module proxy.
  minor="${version#v1.}"
  minor="${minor%%.*}"
  build_date="$(module_time k8s.io/kubernetes "$version")"
  ldflags="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done

  # Upstream builds kube-apiserver as a static binary.
  CGO_ENABLED=0 build_in_module k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver \
    "$version" "$dir" "$bin/kube-apiserver" -ldflags "$ldflags"
  local status=$?
  rm -rf "$dir"
  return $status
}

build_etcd() {
  local bin="$1" dir status
  # etcd's server module has package main at its root. It requires the api, client
  # and pkg modules of its own release, so no replace lines are needed.
  dir="$(new_module_dir etcd "")"
  CGO_ENABLED=0 build_in_module go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 \
    "$ETCD_VERSION" "$dir" "$bin/etcd" -ldflags "-s -w"
  status=$?
  rm -rf "$dir"
  return $status
}

build_helm() {
  local bin="$1" dir status ldflags
  dir="$(new_module_dir helm "")"
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  CGO_ENABLED=0 build_in_module helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm \
    "$HELM_VERSION" "$dir" "$bin/helm" -ldflags "$ldflags"
  status=$?
  rm -rf "$dir"
  return $status
}

# Run "$@" and log how long it took, in seconds.
timed() {
  local label="$1" start status
  shift
  start=$SECONDS
  log "building $label ..."
  if "$@"; then status=0; else status=$?; fi
  log "$label: $((SECONDS - start)) s (status $status)"
  return $status
}

# Build whatever is missing; print the bin dir.
build_all() {
  local version bin="" candidate_bin
  for version in "${K8S_CANDIDATES[@]}"; do
    candidate_bin="$(bin_dir_for "$version")"
    mkdir -p "$candidate_bin"
    if apiserver_ok "$candidate_bin" "$version" ||
      timed "kube-apiserver $version" build_apiserver "$version" "$candidate_bin"; then
      if apiserver_ok "$candidate_bin" "$version"; then
        bin="$candidate_bin"
        break
      fi
      log "kube-apiserver $version built but does not report 'Kubernetes $version'"
    fi
    log "kube-apiserver $version failed; trying the next candidate"
    # Drop the dirs made for this candidate if nothing was built in them.
    rmdir "$candidate_bin" "$(dirname "$candidate_bin")" 2>/dev/null || true
  done
  [[ -n "$bin" ]] || die "kube-apiserver failed to build for every candidate: ${K8S_CANDIDATES[*]}"

  etcd_ok "$bin" || timed "etcd $ETCD_VERSION" build_etcd "$bin" || die "etcd $ETCD_VERSION failed to build"
  etcd_ok "$bin" || die "etcd does not report version ${ETCD_VERSION#v}"
  helm_ok "$bin" || timed "helm $HELM_VERSION" build_helm "$bin" || die "helm $HELM_VERSION failed to build"
  helm_ok "$bin" || die "helm does not report version $HELM_VERSION"
  printf '%s\n' "$bin"
}

main() {
  case "${1:-}" in
    --print-bin)
      find_built_bin || die "test-bed binaries are not built; run scripts/testbed.sh"
      return
      ;;
    "") ;;
    *) die "unknown argument: $1 (expected no argument or --print-bin)" ;;
  esac

  command -v go >/dev/null || die "go not found in PATH; install Go 1.24 or newer"
  mkdir -p "$CACHE_ROOT"
  if find_built_bin; then
    return
  fi

  # One build at a time per cache root: parallel callers wait here, then reuse the result.
  exec 9>"$CACHE_ROOT/.build.lock"
  flock 9
  if find_built_bin; then
    return
  fi
  local start=$SECONDS
  build_all
  log "cold build finished in $((SECONDS - start)) s"
}

main "$@"
