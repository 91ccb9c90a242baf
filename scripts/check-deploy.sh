#!/usr/bin/env bash
# Checks of deploy/ that need no cluster:
#  - every Kubernetes manifest against the Kubernetes API schemas
#    (kubernetes-validate from PyPI, --strict: unknown fields are errors), for
#    the oldest Kubernetes the Job needs (1.29: backoffLimitPerIndex) and the
#    newest the package knows; a broken copy of job.yaml must fail (the check
#    can fail);
#  - the shell scripts inside the manifests: sh -n (dash, POSIX sh);
#  - the Slurm scripts: bash -n; every #SBATCH line before the first command
#    (sbatch ignores the ones after it); the directives kiln relies on.
# kubernetes-validate goes into a virtual environment, as check-kernels.sh's
# wheels do: ~/.cache/kiln/kubernetes-validate-<version> (or
# $KILN_DEPLOY_VENV), made on first use (10 to 20 s from PyPI).
#
#   scripts/check-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
failed=0
fail() {
    echo "check-deploy: FAIL: $*" >&2
    failed=1
}

KV_VERSION=1.37.0
venv="${KILN_DEPLOY_VENV:-$HOME/.cache/kiln/kubernetes-validate-$KV_VERSION}"
if [[ ! -x "$venv/bin/kubernetes-validate" ]]; then
    echo "check-deploy: installing kubernetes-validate==$KV_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi
echo "check-deploy: kubernetes-validate $("$venv/bin/kubernetes-validate" --version) ready after $((SECONDS - start)) s"

manifests=(deploy/kubernetes/*.yaml)
for version in 1.29.0 1.37.0; do
    if out="$("$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}" 2>&1)"; then
        echo "check-deploy: ok: ${#manifests[@]} manifests valid against Kubernetes $version"
    else
        fail "against Kubernetes $version: $out"
    fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# (the schemas do not list completionMode's values: a misspelt field instead)
sed 's/^  parallelism:/  paralelism:/' deploy/kubernetes/job.yaml >"$tmp/broken-job.yaml"
if "$venv/bin/kubernetes-validate" --strict --quiet "$tmp/broken-job.yaml" >/dev/null 2>&1; then
    fail "a job.yaml with spec.paralelism passed kubernetes-validate --strict"
else
    echo "check-deploy: ok: a broken job.yaml fails the validation"
fi

# The scripts of the containers: sh -n each (the images run /bin/sh).
if "$venv/bin/python" - "$tmp" "${manifests[@]}" <<'PY'; then
import pathlib, subprocess, sys, yaml
tmp, files = pathlib.Path(sys.argv[1]), sys.argv[2:]
bad = 0
count = 0
for f in files:
    for doc in yaml.safe_load_all(open(f)):
        if not doc or doc.get("kind") not in ("Job", "Pod", "DaemonSet", "CronJob"):
            continue
        spec = doc["spec"]
        spec = spec.get("jobTemplate", {}).get("spec", spec)
        pod = spec["template"]["spec"]
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            cmd = c.get("command", []) + c.get("args", [])
            if len(cmd) >= 3 and cmd[0].endswith("sh") and cmd[1] == "-c":
                script = tmp / f"{doc['metadata']['name']}-{c['name']}.sh"
                script.write_text(cmd[2])
                r = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
                count += 1
                if r.returncode:
                    bad += 1
                    print(f"{f}: container {c['name']}: sh -n: {r.stderr.strip()}", file=sys.stderr)
print(f"check-deploy: ok: sh -n on {count} container scripts" if not bad else "", end="\n" if not bad else "")
sys.exit(1 if bad or not count else 0)
PY
    :
else
    fail "the container scripts of the manifests (sh -n)"
fi

for f in deploy/slurm/*.sbatch deploy/slurm/*.sh scripts/test-slurm.sh scripts/test-prometheus.sh scripts/deploy-lib.sh; do
    bash -n "$f" || fail "bash -n $f"
done
echo "check-deploy: ok: bash -n on the Slurm scripts and the deployment tests"

for f in deploy/slurm/*.sbatch; do
    # sbatch reads #SBATCH lines only until the first line that is neither a
    # comment nor blank
    first_cmd="$(grep -n -v -E '^[[:space:]]*(#|$)' "$f" | head -1 | cut -d: -f1)"
    late="$(awk -v n="$first_cmd" 'NR > n && /^#SBATCH/ {print NR": "$0}' "$f")"
    [[ -z "$late" ]] || fail "$f: #SBATCH after the first command (line $first_cmd), ignored by sbatch: $late"
done
for d in '--ntasks-per-node=1' '--exclusive' '--signal=TERM@'; do
    grep -q -E "^#SBATCH $d" deploy/slurm/kiln.sbatch || fail "deploy/slurm/kiln.sbatch: no #SBATCH $d"
done
echo "check-deploy: ok: #SBATCH directives where sbatch reads them"

if ((failed)); then
    echo "check-deploy: FAILED ($((SECONDS - start)) s)"
    exit 1
fi
echo "check-deploy: passed in $((SECONDS - start)) s"
