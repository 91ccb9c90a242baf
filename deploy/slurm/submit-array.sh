#!/usr/bin/env bash
# Submit kiln as a job array, one task per node, and its fleet step:
#
#   deploy/slurm/submit-array.sh N [SBATCH OPTIONS...]
#
# e.g. deploy/slurm/submit-array.sh 40 --gres=gpu:8 --partition=gpu
# The sbatch options go to the array (kiln.sbatch) only. Prints the two job
# ids ("ARRAY_ID FLEET_ID"); the fleet job's exit status is kiln fleet's.
# Environment as in kiln.sbatch (KILN, KILN_RESULTS, KILN_ARGS, ...).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 NODES [SBATCH OPTIONS...]  (NODES: how many array tasks, 1 or more)" >&2
    exit 2
fi
n="$1"
shift
array_id="$(sbatch --parsable --array="0-$((n - 1))" "$@" "$here/kiln.sbatch")"
array_id="${array_id%%;*}"
fleet_id="$(sbatch --parsable --dependency="afterany:$array_id" \
    --export="ALL,KILN_FLEET_OF=$array_id" "$here/kiln-fleet.sbatch")"
fleet_id="${fleet_id%%;*}"
echo "$array_id $fleet_id"
