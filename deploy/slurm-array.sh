#!/usr/bin/env bash
# A kvlens sweep as a Slurm job array: task i runs shard i of 8. Submit with `sbatch deploy/slurm-array.sh`,
# then `npx kvlens merge results/shard-*.json --out results/merged.json` once every task has finished.
#SBATCH --job-name=kvlens-sweep
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=results/slurm-%A_%a.log
set -euo pipefail
mkdir -p results
npx kvlens bench "${WORKSPACE:-.}" \
  --model "${MODEL:-default}" \
  --methods full,kivi:bits=2,kivi:bits=4,snapkv:ratio=0.5,h2o:ratio=0.5,streamingllm:ratio=0.5,llmlingua:ratio=0.5 \
  --tasks needle,multikey,vartrack,completion,crossfile \
  --lengths 1k,2k,4k --depths 0,0.25,0.5,0.75,1 --samples 4 --seed 0 \
  --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT:-8}" \
  --out "results/shard-${SLURM_ARRAY_TASK_ID}.json" --force
# --force: a requeued task starts its shard afresh over what the stopped attempt left (a second live writer is
# still refused by the file's lock)
