#!/usr/bin/env bash
# kiln's Prometheus textfile through a real node_exporter, started here on
# 127.0.0.1 and always stopped.
#
#   scripts/test-prometheus.sh                 # kiln run --prometheus, on the sim backend
#   scripts/test-prometheus.sh --file FILE     # any textfile instead (e.g.
#                                              # scripts/testdata/kiln-sample.prom)
#
# 1. kiln run --backend sim --sim-gpus 4 --inject 1:slow=0.85 --prometheus
#    DIR/kiln.prom (a run that rejects a GPU: it exits 1 and must still write
#    the file), or FILE copied to DIR/kiln.prom;
# 2. promtool check metrics < DIR/kiln.prom (format and lint);
# 3. node_exporter on 127.0.0.1:<free port> with only the textfile collector
#    (--collector.disable-defaults --collector.textfile
#    --collector.textfile.directory=DIR); GET /metrics: every sample of the
#    file is served with its labels and value, node_textfile_scrape_error is
#    0 and the file's mtime is exported;
# 4. a broken file beside it: node_textfile_scrape_error must become 1 (the
#    check above can fail).
# Installs prometheus (promtool) and prometheus-node-exporter with apt-get
# when missing (root; no service is started). Runs target/debug/kiln (built
# when missing) or $KILN.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/deploy-lib.sh
source "$repo/scripts/deploy-lib.sh"

file=""
while (($#)); do
    case "$1" in
    --file)
        file="${2:-}"
        shift 2 || true
        [[ -r "$file" ]] || { echo "$0: --file: '$file' cannot be read" >&2; exit 2; }
        ;;
    *)
        echo "usage: $0 [--file TEXTFILE]" >&2
        exit 2
        ;;
    esac
done

start=$SECONDS
ensure_packages prometheus prometheus-node-exporter
echo "test-prometheus: packages ready after $((SECONDS - start)) s"
exporter="$(command -v prometheus-node-exporter || command -v node_exporter || true)"
if [[ -z "$exporter" ]] || ! command -v promtool >/dev/null; then
    echo "test-prometheus: FAIL: node_exporter or promtool not found after the install" >&2
    exit 2
fi

if [[ -z "$file" ]]; then
    KILN="$(kiln_binary "$repo")"
    if ! kiln_has "$KILN" run --prometheus; then
        echo "test-prometheus: FAIL: $KILN run has no --prometheus yet; check the harness with --file scripts/testdata/kiln-sample.prom" >&2
        exit 1
    fi
fi

tmp="$(mktemp -d /tmp/kiln-prom.XXXXXX)"
exporter_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$exporter_pid" ]]; then
        kill -TERM "$exporter_pid" 2>/dev/null || true
        wait "$exporter_pid" 2>/dev/null || true
    fi
    if ((rc != 0)); then
        echo "test-prometheus: files and logs kept in $tmp"
    else
        rm -rf "$tmp"
    fi
    echo "test-prometheus: $((SECONDS - start)) s in all"
    return $rc
}
trap cleanup EXIT
failed=0
fail() {
    echo "test-prometheus: FAIL: $*" >&2
    failed=1
}
ok() { echo "test-prometheus: ok: $*"; }

textdir="$tmp/textfile"
mkdir -p "$textdir"
prom="$textdir/kiln.prom"
if [[ -n "$file" ]]; then
    cp "$file" "$prom"
    echo "test-prometheus: checking $file"
else
    args=(run --backend sim --sim-gpus 4 --profile quick --inject 1:slow=0.85
        --out "$tmp/run" --prometheus "$prom")
    kiln_has "$KILN" run --node-name && args+=(--node-name promtest)
    set +e
    "$KILN" "${args[@]}" >"$tmp/kiln.log" 2>&1
    code=$?
    set -e
    if [[ $code != 1 ]]; then
        fail "kiln run exited $code, expected 1 (GPU 1 rejected; log $tmp/kiln.log)"
    fi
    if [[ ! -s "$prom" ]]; then
        fail "kiln run wrote no $prom"
        exit 1
    fi
    ok "kiln run exited $code and wrote $prom ($(grep -vc '^#' "$prom") samples)"
fi

if promtool check metrics <"$prom" >"$tmp/promtool.log" 2>&1; then
    ok "promtool check metrics"
else
    fail "promtool check metrics: $(tr '\n' ' ' <"$tmp/promtool.log")"
fi

port=""
for _ in 1 2 3; do
    port="$(free_port)"
    "$exporter" --web.listen-address="127.0.0.1:$port" \
        --collector.disable-defaults --collector.textfile \
        --collector.textfile.directory="$textdir" \
        --web.disable-exporter-metrics >"$tmp/node_exporter.log" 2>&1 &
    exporter_pid=$!
    up=0
    for _ in $(seq 100); do
        if ! kill -0 "$exporter_pid" 2>/dev/null; then break; fi
        if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
            "http://127.0.0.1:$port/metrics" 2>/dev/null; then
            up=1
            break
        fi
        sleep 0.1
    done
    ((up)) && break
    kill "$exporter_pid" 2>/dev/null || true
    wait "$exporter_pid" 2>/dev/null || true
    exporter_pid=""
done
if [[ -z "$exporter_pid" ]]; then
    fail "node_exporter did not serve on 127.0.0.1 ($tmp/node_exporter.log)"
    exit 1
fi
ok "node_exporter $("$exporter" --version 2>&1 | head -1 | awk '{print $3}') on 127.0.0.1:$port (textfile collector only)"

# compare.py FILE URL: every sample of FILE served at URL, same labels and
# value; the textfile collector's own series; prints what differs.
cat >"$tmp/compare.py" <<'PY'
import math, re, sys, urllib.request

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')

def parse(text, where):
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            sys.exit(f"{where}:{n}: not a sample line: {line!r}")
        labels, rest = [], m.group(2) or ""
        while rest.strip():
            lm = LABEL.match(rest)
            if not lm:
                sys.exit(f"{where}:{n}: bad labels: {line!r}")
            labels.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end():]
        out[(m.group(1), frozenset(labels))] = float(m.group(3))
    return out

def show(key):
    name, labels = key
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels)) + "}"

mode, path, url = sys.argv[1], sys.argv[2], sys.argv[3]
served = parse(urllib.request.urlopen(url, timeout=5).read().decode(), url)
errors = served.get(("node_textfile_scrape_error", frozenset()))
if mode == "broken":
    # a broken file beside kiln's: the collector must say so
    sys.exit(0 if errors == 1 else f"node_textfile_scrape_error is {errors}, expected 1 with a broken file")
wanted = parse(open(path).read(), path)
problems = []
if errors != 0:
    problems.append(f"node_textfile_scrape_error is {errors}, expected 0")
for key, value in wanted.items():
    got = served.get(key)
    if got is None:
        problems.append(f"not served: {show(key)}")
    elif not (got == value or (math.isnan(got) and math.isnan(value))):
        problems.append(f"{show(key)}: served {got}, file {value}")
mtimes = [k for k in served if k[0] == "node_textfile_mtime_seconds"
          and any(l == "file" and v.endswith("kiln.prom") for l, v in k[1])]
if not mtimes:
    problems.append("no node_textfile_mtime_seconds for kiln.prom")
for p in problems:
    print(p, file=sys.stderr)
if not problems:
    print(f"{len(wanted)} samples of {len({k[0] for k in wanted})} families served as written")
sys.exit(1 if problems else 0)
PY

url="http://127.0.0.1:$port/metrics"
if out="$(python3 "$tmp/compare.py" served "$prom" "$url" 2>&1)"; then
    ok "GET /metrics: $out; node_textfile_scrape_error 0"
else
    fail "GET /metrics: $out"
fi

printf 'kiln_broken{gpu="0" 1\n' >"$textdir/broken.prom"
if out="$(python3 "$tmp/compare.py" broken "$prom" "$url" 2>&1)"; then
    ok "a broken textfile beside it gives node_textfile_scrape_error 1"
else
    fail "$out"
fi
rm -f "$textdir/broken.prom"

if ((failed)); then
    echo "test-prometheus: FAILED"
    exit 1
fi
echo "test-prometheus: passed"
