#!/usr/bin/env bash
# Try logstream-kube on a local kind cluster, and run the integration suite against it.
#
# Usage:
#   scripts/kind-setup.sh create   create the cluster (if missing), build the image,
#                                  load it into kind and install the chart
#   scripts/kind-setup.sh test     `create`, then run tests/integration against the cluster
#   scripts/kind-setup.sh delete   delete the cluster and its kubeconfig
#
# Needs docker (with a running daemon) and kind in PATH; helm is taken from $HELM,
# the test bed (scripts/testbed.sh) or PATH. The chart is installed with the
# placeholder Coder URL http://coder.invalid: nothing is sent anywhere, the
# controller only starts against the cluster. Point `url` at a real Coder deployment
# with `helm upgrade --reuse-values --set url=...` to see lines in workspaces.
#
# Environment:
#   KIND_CLUSTER_NAME  cluster name (default logstream-kube)
#   KIND_KUBECONFIG    kubeconfig written for the cluster
#                      (default ~/.cache/logstream-kube/kind-<name>.kubeconfig)
#   KIND_IMAGE         image tag built and loaded (default logstream-kube:kind)
#   PYTHON             interpreter for the tests (default python)
set -euo pipefail

# Only bash builtins run before the tool check, so that a PATH without docker or kind
# gets the clear message below rather than an unrelated "command not found".
SCRIPT_DIR=.
[[ "${BASH_SOURCE[0]}" == */* ]] && SCRIPT_DIR="${BASH_SOURCE[0]%/*}"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CLUSTER="${KIND_CLUSTER_NAME:-logstream-kube}"
KUBECONFIG_FILE="${KIND_KUBECONFIG:-${HOME:-/tmp}/.cache/logstream-kube/kind-$CLUSTER.kubeconfig}"
IMAGE="${KIND_IMAGE:-logstream-kube:kind}"
RELEASE_NAMESPACE=logstream-kube
TEST_CODER_URL=http://coder.invalid

log() {
  printf 'kind-setup: %s\n' "$*" >&2
}

die() {
  log "error: $*"
  exit 1
}

require_tools() {
  local missing=""
  command -v docker >/dev/null 2>&1 || missing="docker"
  command -v kind >/dev/null 2>&1 || missing="${missing:+$missing and }kind"
  if [[ -n "$missing" ]]; then
    die "$missing not found in PATH. This workflow needs Docker (with a running daemon) and kind (for example: go install sigs.k8s.io/kind@latest). Without them, run the integration suite on the local test bed instead: make testbed test"
  fi
  docker info >/dev/null 2>&1 \
    || die "docker is installed, but 'docker info' failed, so its daemon is not running or not reachable; start Docker and retry"
}

find_helm() {
  if [[ -n "${HELM:-}" ]]; then
    printf '%s\n' "$HELM"
  elif command -v helm >/dev/null 2>&1; then
    command -v helm
  else
    # Builds helm (and the rest of the test bed) when it is not cached yet.
    printf '%s/helm\n' "$(bash "$ROOT/scripts/testbed.sh" | tail -1)"
  fi
}

cluster_exists() {
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER"
}

create() {
  if cluster_exists; then
    log "cluster $CLUSTER exists; reusing it"
  else
    log "creating cluster $CLUSTER"
    mkdir -p "$(dirname "$KUBECONFIG_FILE")"
    kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --wait 120s
  fi
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE"

  log "building image $IMAGE"
  docker build -t "$IMAGE" "$ROOT"
  kind load docker-image "$IMAGE" --name "$CLUSTER"

  log "installing the chart into namespace $RELEASE_NAMESPACE"
  "$(find_helm)" upgrade --install logstream-kube "$ROOT/helm" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --namespace "$RELEASE_NAMESPACE" --create-namespace \
    --set "url=$TEST_CODER_URL" \
    --set "image.repo=${IMAGE%:*}" --set "image.tag=${IMAGE##*:}" \
    --set image.pullPolicy=Never
  log "ready: export KUBECONFIG=$KUBECONFIG_FILE"
}

run_tests() {
  create
  log "running tests/integration against $CLUSTER"
  cd "$ROOT"
  LOGSTREAM_USE_KUBECONFIG=1 KUBECONFIG="$KUBECONFIG_FILE" "${PYTHON:-python}" -m pytest tests/integration
}

delete() {
  if cluster_exists; then
    kind delete cluster --name "$CLUSTER"
  else
    log "no cluster named $CLUSTER"
  fi
  rm -f "$KUBECONFIG_FILE"
}

case "${1:-}" in
  create) require_tools; create ;;
  test) require_tools; run_tests ;;
  delete) require_tools; delete ;;
  *) die "usage: scripts/kind-setup.sh create|test|delete" ;;
esac
