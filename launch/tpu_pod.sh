#!/usr/bin/env bash
# Run an igpo_jax config on every worker of a Cloud TPU VM slice (v4 / v5e / v5p).
#
#   launch/tpu_pod.sh --name igpo-v5p --zone us-east5-a --type v5p-32 [--create] \
#       [--dry-run] [--workdir gs://bucket/runs/igpo] -- configs/llada_8b.py:igpo-v5p32 \
#       --config.model.hf_dir=/data/LLaDA-8B-Instruct ...
#
# Steps: (optionally) create the slice; copy this checkout to every worker and install
# it with jax[tpu]; run `python -m igpo_jax.main` on all workers at once (ssh
# --worker=all streams every worker's log here). jax.distributed finds the slice's
# coordinator by itself (config.distributed.mode=auto). --dry-run prints every command
# instead of running it. Needs the gcloud CLI, logged in, with a project set.
set -euo pipefail

name="" zone="" type="" version="tpu-ubuntu2204-base" create=0 dry=0 workdir="runs/tpu"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --zone) zone="$2"; shift 2 ;;
    --type) type="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --workdir) workdir="$2"; shift 2 ;;
    --create) create=1; shift ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) echo "tpu_pod.sh: unknown option $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
if [[ -z "$name" || -z "$zone" || $# -lt 1 ]]; then
  echo "usage: tpu_pod.sh --name NAME --zone ZONE [--type TYPE --create] [--dry-run]" \
       "[--workdir DIR] -- CONFIG [--config.key=value ...]" >&2
  exit 2
fi
if [[ $create == 1 && -z "$type" ]]; then
  echo "tpu_pod.sh: --create needs --type (e.g. v5p-32)" >&2; exit 2
fi
config="$1"; shift
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

run() {  # print (dry run) or execute one command
  if [[ $dry == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

tpu=(gcloud compute tpus tpu-vm)
if [[ $create == 1 ]]; then
  run "${tpu[@]}" create "$name" --zone "$zone" --accelerator-type "$type" --version "$version"
fi
run "${tpu[@]}" scp --recurse "$repo" "$name:~/igpo_jax" --zone "$zone" --worker=all
run "${tpu[@]}" ssh "$name" --zone "$zone" --worker=all --command \
  "cd ~/igpo_jax && pip install -q -U 'jax[tpu]' && pip install -q -e '.[gcs]'"
extra=""
for a in "$@"; do extra+=" $(printf '%q' "$a")"; done
run "${tpu[@]}" ssh "$name" --zone "$zone" --worker=all --command \
  "cd ~/igpo_jax && python -m igpo_jax.main --config $config --workdir $workdir$extra"
