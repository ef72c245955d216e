#!/usr/bin/env bash
# Starts N local processes of a command with the torchrun-style variables set (RANK, LOCAL_RANK,
# WORLD_SIZE, MASTER_ADDR, MASTER_PORT), for users without torchrun/SLURM. If any process fails, the
# others are stopped and the first failure's exit status is returned. SIGTERM, SIGINT and SIGUSR1 are passed
# on to every process and waited for (gsdiff train checkpoints and exits with 75, "interrupted, resumable").
#
#   tools/launch.sh -n 2 -- gsdiff train --config configs/quickstart.json --out runs/q
#   # two machines, 2 processes each (run on both; node 0's address is the master):
#   tools/launch.sh -n 2 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --master-port 29500 -- gsdiff train ...
#   tools/launch.sh -n 2 --nnodes 2 --node-rank 1 --master-addr 10.0.0.1 --master-port 29500 -- gsdiff train ...
set -euo pipefail

nproc_per_node=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=""
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n|--nproc-per-node) nproc_per_node="$2"; shift 2 ;;
    --nnodes) nnodes="$2"; shift 2 ;;
    --node-rank) node_rank="$2"; shift 2 ;;
    --master-addr) master_addr="$2"; shift 2 ;;
    --master-port) master_port="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || usage
if [[ -z "$master_port" ]]; then
  if [[ "$nnodes" -gt 1 ]]; then master_port=29500
  else master_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 29500)
  fi
fi
world=$((nproc_per_node * nnodes))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trapped=0
forward() { trapped=1; for p in "${pids[@]}"; do kill -"$1" "$p" 2>/dev/null || true; done; }
for sig in TERM INT USR1; do trap "forward $sig" "$sig"; done
for ((i = 0; i < nproc_per_node; i++)); do
  RANK=$((node_rank * nproc_per_node + i)) LOCAL_RANK=$i WORLD_SIZE=$world \
  MASTER_ADDR=$master_addr MASTER_PORT=$master_port "$@" &
  pids+=($!)
done
status=0 left=$nproc_per_node
while ((left > 0)); do
  rc=0 trapped=0
  wait -n || rc=$?
  if ((trapped)); then continue; fi  # a forwarded signal interrupted the wait, not an exit
  left=$((left - 1))
  if [[ $rc -eq 75 && $status -eq 0 ]]; then status=75  # interrupted, resumable: the others stop too
  elif [[ $rc -ne 0 && $rc -ne 75 && ( $status -eq 0 || $status -eq 75 ) ]]; then
    status=$rc
    echo "launch.sh: a rank exited with status $rc; stopping the others" >&2
    cleanup
  fi
done
exit $status
