#!/usr/bin/env bash
# The GPU benchmarks in one run: reranking, indexing and concurrent questions, on CUDA,
# with random-weight models the size of the production 0.6B ones (built once, reused).
#
#   bench/gpu.sh [OUT_DIR]
#
# Prints each benchmark's table; OUT_DIR (default bench-gpu/) keeps the tables and logs.
# Environment: PYTHON (default .venv/bin/python), DEVICE (cuda), DOCS (the Milvus docs
# folder holding en/ and questions.jsonl; default ../shared/data/milvus_docs) and
# REDIS_URL (redis://127.0.0.1:6379/0) for the load runs. A benchmark that fails or
# outruns its time limit is reported with the end of its log; the others still run.
set -u
cd "$(dirname "$0")/.."
out=${1:-bench-gpu}
python=${PYTHON:-.venv/bin/python}
device=${DEVICE:-cuda}
docs=${DOCS:-../shared/data/milvus_docs}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
mkdir -p "$out/models"
failed=0

step() {  # NAME SECONDS SCRIPT ARGS...: run one benchmark, print its table
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    local started=$SECONDS
    PYTHONUNBUFFERED=1 timeout "$limit" "$python" "$@" >"$out/$name.txt" 2>"$out/$name.log"
    local status=$?
    cat "$out/$name.txt"
    if [ "$status" -ne 0 ]; then
        failed=1
        echo "!! $name failed (exit $status$([ "$status" -eq 124 ] && echo ", over ${limit} s")):"
        tail -n 15 "$out/$name.log"
    fi
    echo "   ($((SECONDS - started)) s)"
}

step rerank-20 150 bench/bench_rerank.py --device "$device" --candidates 20 \
    --doc-tokens 500 --corpus "$docs/en" --questions "$docs/questions.jsonl" \
    --model-dir "$out/models/reranker-qwen3-0.6b"
step rerank-100 180 bench/bench_rerank.py --device "$device" --candidates 100 \
    --doc-tokens 500 --corpus "$docs/en" --questions "$docs/questions.jsonl" \
    --model-dir "$out/models/reranker-qwen3-0.6b"
step rerank-concurrent 120 bench/bench_rerank.py --device "$device" --concurrent 16 \
    --candidates 20 --doc-tokens 500 --model-dir "$out/models/reranker-qwen3-0.6b"
step index 150 bench/bench_index.py --device "$device" --random-qwen3 --docs "$docs/en" \
    --compare-slice 32
step load 150 bench/bench_load.py --device "$device" --models qwen3-0.6b \
    --model-dir "$out/models" --redis "$redis_url" --n 200 --workers 2
step latency 80 bench/bench_load.py --device "$device" --models qwen3-0.6b \
    --model-dir "$out/models" --redis "$redis_url" --n 20 --spacing 1 --repeat 0 --workers 2
step one-worker 120 bench/bench_load.py --device "$device" --models qwen3-0.6b \
    --model-dir "$out/models" --redis "$redis_url" --workers 1 --worker-concurrency 16 \
    --chat-delay 2 --no-stream --repeat 0 --n 128 --concurrency 64
rm -rf "$out/models"
exit "$failed"
