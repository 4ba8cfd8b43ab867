#!/usr/bin/env bash
# Try Syncline on a laptop: a kind cluster, the image built and loaded, the chart installed, PostgreSQL and
# an HTTP sink, and one Sync run end to end. Needs docker, kind, kubectl and helm. Not run by the tests
# (no Docker on the test machines); see test/kind/README.md.
#   test/kind/up.sh            create everything and run the Sync
#   test/kind/up.sh down       delete the cluster
set -euo pipefail

CLUSTER="${CLUSTER:-syncline}"
IMAGE="${IMAGE:-syncline:dev}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "error: $1 is not installed ($2)" >&2; exit 1; }; }

if [[ "${1:-}" == "down" ]]; then
  kind delete cluster --name "$CLUSTER"
  exit 0
fi

need docker "https://docs.docker.com/get-docker/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need helm "https://helm.sh/docs/intro/install/"

step "kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "image $IMAGE"
docker build -t "$IMAGE" --build-arg REVISION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo dev)" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "namespace demo: PostgreSQL, an HTTP sink, a volume for the diff store"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -

step "the Syncline chart (CRDs, operator, RBAC), watching namespace demo"
helm upgrade --install syncline "$ROOT/charts/syncline" \
  --namespace syncline-system --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set 'watchNamespaces={demo}' \
  --set diffStore.url=file:///var/lib/syncline/diffstore \
  --set diffStore.persistentVolumeClaim=syncline-state \
  --wait --timeout 5m

kubectl apply -n demo -f "$HERE/demo.yaml"
kubectl -n demo rollout status deployment/postgres --timeout=180s
kubectl -n demo rollout status deployment/sink --timeout=180s

step "one run of Sync customers-to-sink"
kubectl -n demo wait sync/customers-to-sink --for=condition=Ready --timeout=300s
kubectl -n demo annotate sync customers-to-sink syncline.io/run-requested-at="$(date -u +%FT%TZ)" --overwrite
for _ in $(seq 1 120); do
  result="$(kubectl -n demo get sync customers-to-sink -o jsonpath='{.status.lastRun.result}')"
  [[ -n "$result" ]] && break
  sleep 2
done
kubectl -n demo get syncline
echo
echo "The sink received:"
kubectl -n demo logs deployment/sink | tail -n 5
[[ "$result" == "Succeeded" ]] || { echo "error: the run ended $result: kubectl -n demo describe sync customers-to-sink" >&2; exit 1; }

cat <<'DONE'

Syncline is running. Next:
  kubectl -n demo get syncline                      # the four resources and their state
  kubectl -n demo exec deploy/postgres -- psql -U postgres app -c "UPDATE customers SET plan='pro' WHERE id=2"
  npx kubectl-syncline plan customers-to-sink -n demo   # what the next run would send (needs the repo's npm ci)
  test/kind/up.sh down                              # delete the cluster
DONE
