#!/usr/bin/env bash
# End-to-end test of the tuneflow operator on a real cluster: build the image, install
# deploy/, submit two small experiments (a Katib file and a native one) with `tuneflow submit`,
# wait until both are Succeeded, read the results through the REST API, delete them and check
# that their Jobs are gone.
#
# Usage: deploy/e2e/kind.sh [options]
#
#   (default)          create a kind cluster named $KIND_CLUSTER_NAME (tuneflow-e2e), load the
#                      image into it, and delete the cluster at the end
#   --no-kind          use the cluster of the current kubeconfig context instead (also implied
#                      by USE_EXISTING_CLUSTER=1); the image must then be pullable by the
#                      cluster: give --image REGISTRY/tuneflow:TAG (it is pushed) or --no-build
#   --image NAME       image to build and deploy (default tuneflow:dev)
#   --no-build         do not build the image (it exists in the cluster or a registry)
#   --timeout MINUTES  how long to wait for the experiments (default 10)
#   --keep             leave the cluster, operator and experiments in place for inspection
#
# Needs docker, kubectl, cargo (to build the `tuneflow` CLI for `submit`) and, without
# --no-kind, kind. Exit status 0 when every step passed; on failure the operator's logs, the
# experiments, Jobs, pods and events are printed.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${KIND_CLUSTER_NAME:-tuneflow-e2e}"
IMAGE="tuneflow:dev"
TIMEOUT_MINUTES=10
USE_KIND=1
BUILD=1
KEEP=0
SYSTEM_NS=tuneflow-system
TEST_NS=tuneflow-e2e
[[ "${USE_EXISTING_CLUSTER:-0}" == 1 ]] && USE_KIND=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-kind) USE_KIND=0 ;;
    --image) IMAGE="${2:?--image needs a value}"; shift ;;
    --no-build) BUILD=0 ;;
    --timeout) TIMEOUT_MINUTES="${2:?--timeout needs a number of minutes}"; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "kind.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '\n==> %s\n' "$*" >&2; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; diagnose; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "kind.sh: $1 is required but not installed ($2)" >&2; exit 2; }
}
need docker "https://docs.docker.com/get-docker/"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need cargo "https://rustup.rs"
need curl "your package manager"
[[ "$USE_KIND" == 1 ]] && need kind "https://kind.sigs.k8s.io/docs/user/quick-start/"

CREATED_CLUSTER=0
PORT_FORWARD_PID=""

diagnose() {
  set +e
  echo "---- experiments" >&2
  kubectl get experiments -A -o wide >&2
  kubectl -n "$TEST_NS" get experiments -o yaml >&2
  echo "---- jobs and pods in $TEST_NS" >&2
  kubectl -n "$TEST_NS" get jobs,pods -o wide >&2
  echo "---- events in $TEST_NS" >&2
  kubectl -n "$TEST_NS" get events --sort-by=.lastTimestamp >&2
  echo "---- operator" >&2
  kubectl -n "$SYSTEM_NS" describe deployment/tuneflow-operator >&2
  kubectl -n "$SYSTEM_NS" describe pods -l app.kubernetes.io/name=tuneflow-operator >&2
  echo "---- operator logs" >&2
  kubectl -n "$SYSTEM_NS" logs deployment/tuneflow-operator --all-containers --tail=300 >&2
  set -e
}

cleanup() {
  local status=$?
  set +e
  [[ -n "$PORT_FORWARD_PID" ]] && kill "$PORT_FORWARD_PID" 2>/dev/null
  if [[ "$KEEP" == 1 ]]; then
    log "--keep: leaving everything in place (kubectl context: $(kubectl config current-context))"
  elif [[ "$CREATED_CLUSTER" == 1 ]]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER"
  else
    log "deleting namespace $TEST_NS (the operator stays installed; remove it with kubectl delete -k deploy/)"
    kubectl delete namespace "$TEST_NS" --ignore-not-found --wait=false
  fi
  exit "$status"
}
trap cleanup EXIT

# ---- the cluster
if [[ "$USE_KIND" == 1 ]]; then
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "using the existing kind cluster $CLUSTER"
  else
    log "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --wait 120s
    CREATED_CLUSTER=1
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
else
  log "using the cluster of context $(kubectl config current-context)"
fi
kubectl cluster-info >/dev/null || { echo "kind.sh: the cluster does not answer (kubectl cluster-info)" >&2; exit 1; }

# ---- the image and the CLI
if [[ "$BUILD" == 1 ]]; then
  log "building image $IMAGE (first build: several minutes)"
  DOCKER_BUILDKIT=1 docker build -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT"
  if [[ "$USE_KIND" == 1 ]]; then
    kind load docker-image "$IMAGE" --name "$CLUSTER"
  else
    log "pushing $IMAGE"
    docker push "$IMAGE"
  fi
fi
log "building the tuneflow CLI"
(cd "$ROOT" && cargo build --locked --bin tuneflow)
TUNEFLOW="$ROOT/target/debug/tuneflow"

# ---- install
log "installing deploy/ (CRD, RBAC, operator)"
kubectl apply -f "$ROOT/deploy/crd.yaml"
kubectl wait --for condition=Established crd/experiments.tuneflow.dev --timeout=60s
kubectl apply -k "$ROOT/deploy"
if ! kubectl -n "$SYSTEM_NS" get secret tuneflow-api-token >/dev/null 2>&1; then
  kubectl -n "$SYSTEM_NS" create secret generic tuneflow-api-token \
    --from-literal=token="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
fi
TOKEN="$(kubectl -n "$SYSTEM_NS" get secret tuneflow-api-token -o jsonpath='{.data.token}' | base64 -d)"
if [[ "$IMAGE" != "tuneflow:dev" ]]; then
  kubectl -n "$SYSTEM_NS" set image deployment/tuneflow-operator operator="$IMAGE"
fi
kubectl -n "$SYSTEM_NS" rollout status deployment/tuneflow-operator --timeout=180s \
  || fail "the operator did not become ready"

# ---- submit
log "submitting the examples to namespace $TEST_NS"
kubectl create namespace "$TEST_NS" --dry-run=client -o yaml | kubectl apply -f -
"$TUNEFLOW" submit --namespace "$TEST_NS" "$ROOT/examples/kubernetes/katib-job.yaml" \
  || fail "tuneflow submit of the Katib example"
"$TUNEFLOW" submit --namespace "$TEST_NS" "$ROOT/examples/kubernetes/experiment.yaml" \
  || fail "tuneflow submit of the native example"
EXPERIMENTS=(quadratic-katib branin-k8s)

# ---- wait
log "waiting up to $TIMEOUT_MINUTES minutes for ${EXPERIMENTS[*]} to succeed"
deadline=$(( $(date +%s) + TIMEOUT_MINUTES * 60 ))
while :; do
  done_count=0
  for name in "${EXPERIMENTS[@]}"; do
    state="$(kubectl -n "$TEST_NS" get experiment "$name" -o jsonpath='{.status.state}' 2>/dev/null || true)"
    case "$state" in
      Succeeded) done_count=$((done_count + 1)) ;;
      Failed) fail "experiment $name failed: $(kubectl -n "$TEST_NS" get experiment "$name" -o jsonpath='{.status.conditions[-1:].message}')" ;;
    esac
  done
  kubectl -n "$TEST_NS" get experiments
  [[ "$done_count" == "${#EXPERIMENTS[@]}" ]] && break
  [[ $(date +%s) -ge $deadline ]] && fail "the experiments did not succeed within $TIMEOUT_MINUTES minutes"
  sleep 10
done

# ---- results through the REST API
log "reading the results through the REST API (port-forward)"
kubectl -n "$SYSTEM_NS" port-forward service/tuneflow-operator 18080:8080 >/dev/null 2>&1 &
PORT_FORWARD_PID=$!
for _ in $(seq 30); do
  curl -fsS http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break
  sleep 1
done
for name in "${EXPERIMENTS[@]}"; do
  curl -fsS -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:18080/api/v1/experiments/$TEST_NS.$name" \
    || fail "GET /api/v1/experiments/$TEST_NS.$name"
  echo
done
kill "$PORT_FORWARD_PID" 2>/dev/null || true
PORT_FORWARD_PID=""

# ---- delete: the finalizer removes the trials' Jobs
log "deleting the experiments"
kubectl -n "$TEST_NS" delete experiments --all --timeout=120s \
  || fail "the experiments were not deleted (finalizer)"
left="$(kubectl -n "$TEST_NS" get jobs -l tuneflow.dev/experiment -o name)"
[[ -z "$left" ]] || fail "Jobs left behind after the experiments were deleted: $left"

log "PASSED"
