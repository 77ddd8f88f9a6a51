"""A run that fails on purpose, to show how sparkjobs reports failures.

Writes outputs/partial.txt (work done before the failure, still collected as an
artifact), prints an error to stderr and exits with status 3.

    sparkjobs run -c local fail.py      # the run is recorded as failed, exit code 3
    spark-submit fail.py; echo $?       # 3
"""
import os
import sys

try:
    from sparkjobs import context
except ImportError:  # bare spark-submit, or a cluster without sparkjobs
    context = None

# Plain files go to ./outputs on every target (on clusters sparkjobs copies it when the
# script ends); locally that is the run's outputs folder itself.
outputs = os.environ.get("SPARKJOBS_OUTPUTS") or ""
if context is not None and not context.is_cluster():
    outputs = context.outputs_path()
elif not outputs or "://" in outputs:
    outputs = os.path.abspath("outputs")
os.makedirs(outputs, exist_ok=True)

with open(os.path.join(outputs, "partial.txt"), "w", encoding="utf-8") as handle:
    handle.write("step 1 of 2 done: this file was written before the failure\n")
print("fail.py: wrote partial.txt; step 2 is about to fail", flush=True)
print("fail.py: simulated failure in step 2, exiting with status 3", file=sys.stderr, flush=True)
sys.exit(3)
