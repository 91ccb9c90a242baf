#!/usr/bin/env bash
# deploy/slurm/kiln.sbatch on a real Slurm, started here: munged, slurmctld
# and three slurmd (Debian's Slurm is built with --enable-multiple-slurmd, so
# one host can be three nodes: sim0, sim1, sim2), all as root, all state under
# one temporary folder, in a private network namespace (only its own
# loopback: nothing listens on the machine's addresses, no port clashes) and a
# private PID namespace (when this script ends, however it ends, the kernel
# stops every daemon it started).
#
#   scripts/test-slurm.sh [--keep]
#
# Needs root and Debian (installs slurmd, slurmctld, slurm-client and munge
# with apt-get when missing; no service is started by the install). Runs
# target/debug/kiln (built with cargo build when missing) or $KILN.
#
# The scenario, on the sim backend with 4 GPUs per node:
#   sim0: GPU 2 slow (--inject 2:slow=0.85): its own run rejects it;
#   sim1: every GPU 6 % slow: its own run accepts them all (its peers are as
#         slow), only the fleet rule can flag it;
#   sim2: clean.
# Checked: the job runs kiln once on each node with that node's flags, a run
# folder per node in the shared KILN_RESULTS, each run's verdicts; then kiln
# fleet: the batch exits with its status (1), fleet.json flags exactly sim0
# and sim1 (sim1 as fleet_outlier) and accepts sim2, fleet.csv, fleet.pdf and
# the Prometheus file exist. Then the same through the array form
# (submit-array.sh: three array tasks and the fleet job).
# --keep keeps the temporary folder (logs, slurm.conf, results); it is also
# kept when a check fails.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/deploy-lib.sh
source "$repo/scripts/deploy-lib.sh"

keep=0
inside=0
for a in "$@"; do
    case "$a" in
    --keep) keep=1 ;;
    --inside) inside=1 ;;
    *)
        echo "usage: $0 [--keep]" >&2
        exit 2
        ;;
    esac
done

if ((!inside)); then
    start=$(date +%s)
    if [[ $EUID -ne 0 ]]; then
        echo "$0: needs root (starts munged, slurmctld and slurmd, and namespaces)" >&2
        exit 2
    fi
    ensure_packages munge slurm-client slurmctld slurmd
    echo "$0: packages ready after $(($(date +%s) - start)) s"
    KILN="$(kiln_binary "$repo")"
    export KILN KILN_TEST_KEEP=$keep KILN_TEST_START=$start
    # A new network namespace (only lo, which is brought up inside) and a
    # new PID namespace with this script as its init: --kill-child stops it
    # if unshare is killed, and its end stops every daemon.
    exec unshare --net --pid --fork --mount-proc --kill-child "$0" --inside
fi

# ---- inside the namespaces --------------------------------------------
ip link set lo up
# glibc's getaddrinfo with AI_ADDRCONFIG (Slurm's) finds no IPv4 when 127.0.0.1
# is the only address; a second loopback address of this namespace's lo.
ip addr add 127.0.0.2/32 dev lo
tmp="$(mktemp -d /tmp/kiln-slurm.XXXXXX)"
chmod 700 "$tmp"
cd "$tmp"
cd "$tmp"
failed=0
pids=()
cleanup() {
    local rc=$?
    local p
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        p="${pids[i]}"
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if ((rc != 0 || failed || KILN_TEST_KEEP)); then
        echo "test-slurm: state, logs and results kept in $tmp"
    else
        rm -rf "$tmp"
    fi
    echo "test-slurm: $(($(date +%s) - KILN_TEST_START)) s in all"
    return $rc
}
trap cleanup EXIT

fail() {
    echo "test-slurm: FAIL: $*" >&2
    failed=1
}
ok() { echo "test-slurm: ok: $*"; }

mkdir -p "$tmp"/{munge,state,spool,run,log,results}
chmod 700 "$tmp/munge"

# munge, with its own key and socket
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 600 "$tmp/munge/munge.key"
munged --foreground --force --key-file="$tmp/munge/munge.key" \
    --socket="$tmp/munge/munge.socket" --pid-file="$tmp/munge/munged.pid" \
    --seed-file="$tmp/munge/munged.seed" --log-file="$tmp/log/munged.log" \
    --num-threads=4 >>"$tmp/log/munged.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -S "$tmp/munge/munge.socket" ]] && break; sleep 0.1; done
if ! munge -S "$tmp/munge/munge.socket" -n | unmunge -S "$tmp/munge/munge.socket" >/dev/null; then
    fail "munged does not answer (log: $tmp/log/munged.log)"
    exit 1
fi

nodes=(sim0 sim1 sim2)
mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
cat >"$tmp/slurm.conf" <<EOF
ClusterName=kilntest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=6817
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool/%n
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd-%n.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=10
PlugStackConfig=$tmp/plugstack.conf
EOF
: >"$tmp/plugstack.conf"
port=6818
for n in "${nodes[@]}"; do
    echo "NodeName=$n NodeHostname=localhost NodeAddr=127.0.0.1 Port=$port CPUs=2 RealMemory=$mem_mb State=UNKNOWN" >>"$tmp/slurm.conf"
    port=$((port + 1))
done
echo "PartitionName=kiln Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >>"$tmp/slurm.conf"
export SLURM_CONF="$tmp/slurm.conf"

slurmctld -D -i -f "$SLURM_CONF" >>"$tmp/log/slurmctld.log" 2>&1 &
pids+=($!)
for n in "${nodes[@]}"; do
    slurmd -D -N "$n" -f "$SLURM_CONF" >>"$tmp/log/slurmd-$n.log" 2>&1 &
    pids+=($!)
done

# Every node idle, within a minute
up=0
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    states="$(timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null | sort -u || true)"
    if [[ "$(grep -c ' idle$' <<<"$states")" == "${#nodes[@]}" ]]; then
        up=1
        break
    fi
    sleep 0.5
done
if ((!up)); then
    fail "the nodes are not idle within 60 s: $(tr '\n' ';' <<<"$states") (logs: $tmp/log)"
    exit 1
fi
ok "Slurm up after $(($(date +%s) - KILN_TEST_START)) s: $(tr '\n' ' ' <<<"$states")"

results="$tmp/results"
cat >"$tmp/node-args" <<'EOF'
# node      flags added to KILN_ARGS for that node
sim0 --inject 2:slow=0.85
sim1 --inject 0:slow=0.94 --inject 1:slow=0.94 --inject 2:slow=0.94 --inject 3:slow=0.94
sim2
arr0 --inject 2:slow=0.85
arr1 --inject 0:slow=0.94 --inject 1:slow=0.94 --inject 2:slow=0.94 --inject 3:slow=0.94
arr2
EOF
export KILN_RESULTS="$results"
export KILN_ARGS="--backend sim --sim-gpus 4 --profile quick"
export KILN_ARGS_FILE="$tmp/node-args"

# wait_job ID SECONDS: waits until job ID has ended; prints "STATE EXIT"
# (EXIT: the batch script's exit status).
wait_job() {
    local id="$1" deadline=$((SECONDS + $2)) line state code
    while ((SECONDS < deadline)); do
        line="$(timeout 5 scontrol show job -o "$id" 2>/dev/null || true)"
        state="$(grep -o 'JobState=[A-Z_]*' <<<"$line" | cut -d= -f2 || true)"
        case "$state" in
        PENDING | RUNNING | CONFIGURING | COMPLETING | "") sleep 0.5 ;;
        *)
            code="$(grep -o ' ExitCode=[0-9]*' <<<"$line" | cut -d= -f2)"
            echo "$state $code"
            return 0
            ;;
        esac
    done
    echo "TIMEOUT -"
    scancel "$id" 2>/dev/null || true
}

# check_runs NAME... SUFFIX...: every node's run folder, its flags applied
# and its verdicts. Names and suffixes are paired in order.
check_runs() {
    local -a names=("${@:1:3}") suffixes=("${@:4:3}")
    local i
    for i in 0 1 2; do
        local dir="$results/${names[i]}-${suffixes[i]}"
        if [[ ! -f "$dir/results.json" || ! -f "$dir/journal.jsonl" ]]; then
            fail "no run folder $dir (with results.json and journal.jsonl)"
            continue
        fi
        # expected verdicts per GPU: node 0 rejects GPU 2, the others accept all
        local expect="accept accept accept accept"
        ((i == 0)) && expect="accept accept reject accept"
        local got
        got="$(python3 - "$dir/results.json" "${names[i]}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(dev["verdict"] for dev in sorted(d["devices"], key=lambda x: x["index"])))
print(d.get("host", ""))
PY
)"
        local verdicts host
        verdicts="$(head -1 <<<"$got")"
        host="$(tail -1 <<<"$got")"
        if [[ "$verdicts" != "$expect" ]]; then
            fail "${names[i]}: verdicts per GPU '$verdicts', expected '$expect' ($dir/results.json)"
        else
            ok "${names[i]}: run folder $dir, verdicts $verdicts"
        fi
        if kiln_has "$KILN" run --node-name && [[ "$host" != "${names[i]}" ]]; then
            fail "${names[i]}: results.json names the node '$host'"
        fi
    done
}

# check_fleet DIR PROM BATCH_EXIT N0 N1 N2: kiln fleet's outputs.
check_fleet() {
    local dir="$1" prom="$2" code="$3"
    shift 3
    if [[ "$code" != 1 ]]; then
        fail "the fleet step exited $code, expected 1 (kiln fleet: a node rejected or flagged)"
    else
        ok "the fleet step exited 1"
    fi
    local f
    for f in fleet.json fleet.csv fleet.pdf; do
        [[ -s "$dir/$f" ]] || fail "no $dir/$f"
    done
    [[ -s "$prom" ]] || fail "no Prometheus file $prom"
    if [[ -s "$prom" ]] && command -v promtool >/dev/null; then
        promtool check metrics <"$prom" || fail "promtool check metrics: $prom"
    fi
    [[ -s "$dir/fleet.json" ]] || return 0
    if python3 - "$dir/fleet.json" "$@" <<'PY'; then
import json, sys
doc = json.load(open(sys.argv[1]))
slow_gpu, all_slow, clean = sys.argv[2:5]
nodes = {n["node"]: n for n in doc["nodes"]}
errors = []
if set(nodes) != {slow_gpu, all_slow, clean}:
    errors.append(f"nodes {sorted(nodes)}, expected {sorted([slow_gpu, all_slow, clean])}")
else:
    flagged = sorted(n for n, v in nodes.items() if v["flagged"])
    if flagged != sorted([slow_gpu, all_slow]):
        errors.append(f"flagged {flagged}, expected {sorted([slow_gpu, all_slow])}")
    codes = lambda n: [f["code"] for f in nodes[n]["flags"]]
    if "gpu_rejected" not in codes(slow_gpu):
        errors.append(f"{slow_gpu}: flags {codes(slow_gpu)}, expected gpu_rejected")
    if "fleet_outlier" not in codes(all_slow):
        errors.append(f"{all_slow}: flags {codes(all_slow)}, expected fleet_outlier")
    if nodes[clean]["verdict"] != "accept" or codes(clean):
        errors.append(f"{clean}: verdict {nodes[clean]['verdict']}, flags {codes(clean)}; expected accept, none")
for e in errors:
    print("fleet.json: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
        ok "fleet.json: $1 and $2 flagged, $3 accepted"
    else
        fail "fleet.json ($dir/fleet.json)"
    fi
}

# ---- one job over three nodes (kiln.sbatch) ----
t0=$SECONDS
job="$(sbatch --parsable -N 3 --time=00:05:00 --chdir="$tmp" --output="$tmp/log/job-%j.out" \
    "$repo/deploy/slurm/kiln.sbatch")"
read -r state code < <(wait_job "$job" 180)
echo "test-slurm: job $job (kiln.sbatch, 3 nodes): $state, exit $code, $((SECONDS - t0)) s; output $tmp/log/job-$job.out"
sed 's/^/  | /' "$tmp/log/job-$job.out" | grep -E 'kiln.sbatch|error|FAIL|fleet' || true
[[ "$state" == TIMEOUT ]] && fail "job $job did not end within 180 s"
check_runs sim0 sim1 sim2 "$job" "$job" "$job"
check_fleet "$results/fleet-$job" "$results/fleet-$job.prom" "$code" sim0 sim1 sim2

# ---- the array form (submit-array.sh: three tasks, then the fleet job) ----
t0=$SECONDS
read -r array fleet < <(KILN_NODE_NAME='arr%a' "$repo/deploy/slurm/submit-array.sh" 3 \
    --time=00:05:00 --chdir="$tmp" --output="$tmp/log/array-%A_%a.out")
read -r state code < <(wait_job "$fleet" 180)
echo "test-slurm: array $array and fleet job $fleet: $state, exit $code, $((SECONDS - t0)) s"
[[ "$state" == TIMEOUT ]] && fail "fleet job $fleet did not end within 180 s"
check_runs arr0 arr1 arr2 "${array}_0" "${array}_1" "${array}_2"
check_fleet "$results/fleet-$array" "$results/fleet-$array.prom" "$code" arr0 arr1 arr2

# ---- the time limit: a burn-in longer than the job's --time ----
# --time=1 (minute) with kiln.sbatch's --signal=TERM@120: Slurm sends SIGTERM
# at its first time-limit check (every 30 s or so); kiln must stop after its
# current step, write complete results marked interrupted (exit 4) and the
# job end before the limit, with the fleet step run.
t0=$SECONDS
job="$(KILN_ARGS="--backend sim --sim-gpus 2 --profile burnin --duration 10m" \
    sbatch --parsable -N 1 -w sim2 --time=1 --chdir="$tmp" --output="$tmp/log/job-%j.out" \
    "$repo/deploy/slurm/kiln.sbatch")"
read -r state code < <(wait_job "$job" 150)
echo "test-slurm: job $job (burn-in of 10 min, --time=1): $state, exit $code, $((SECONDS - t0)) s"
dir="$results/sim2-$job"
if [[ "$state" == TIMEOUT ]]; then
    fail "job $job hit its time limit (kiln did not stop on Slurm's SIGTERM)"
elif ! grep -q "node sim2: kiln run exited 4" "$tmp/log/job-$job.out"; then
    fail "kiln did not exit 4 (interrupted) on Slurm's SIGTERM: $(grep 'kiln run exited' "$tmp/log/job-$job.out" || echo 'no exit line') ($tmp/log/job-$job.out)"
elif ! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["interrupted"] and d["devices"] else 1)' "$dir/results.json" 2>/dev/null; then
    fail "$dir/results.json missing or not marked interrupted"
elif ! grep -q "kiln.sbatch: kiln fleet exited" "$tmp/log/job-$job.out"; then
    fail "the fleet step did not run after the interrupted run"
else
    ok "Slurm's SIGTERM before the time limit: kiln exited 4, results.json marked interrupted, the fleet step ran"
fi

if ((failed)); then
    echo "test-slurm: FAILED"
    exit 1
fi
echo "test-slurm: passed"
