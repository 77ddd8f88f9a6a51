"""sparkjobs bootstrap: the application's main file, run on the driver in place of the user's script.

``spark-submit [--py-files ...,sparkjobs-runtime-<digest>.zip] driver.py LAUNCH_SPEC``

spark-submit and Livy run one file; this is it. The work is done by the ``sparkjobs.bootstrap``
package (``launch.py`` describes the launch spec and every step), imported from the runtime zip
in ``pyFiles`` on a cluster and from the installed sparkjobs on this machine. The bootstrap uses
the standard library and pyspark only, since sparkjobs is not installed on clusters.
"""
from __future__ import annotations

import os
import sys

EXIT_BOOTSTRAP = 2  # as sparkjobs.bootstrap.spec.EXIT_BOOTSTRAP, which may not be importable here

if __name__ == "__main__":
    # Python put this file's folder first on sys.path. The bootstrap's modules are imported as
    # the sparkjobs.bootstrap package, and the user's script must not find them by bare names.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _here]
    try:
        from sparkjobs.bootstrap.launch import main
    except ImportError as exc:
        print(
            f"sparkjobs bootstrap: cannot import the sparkjobs runtime ({exc}); "
            "ship sparkjobs-runtime.zip with --py-files (Livy: pyFiles).",
            file=sys.stderr,
        )
        sys.exit(EXIT_BOOTSTRAP)
    try:
        code = main(sys.argv[1:])
    finally:
        from sparkjobs.bootstrap.console import flush_stdio
        from sparkjobs.bootstrap.console_drain import wait_until_output_is_read

        flush_stdio()
        wait_until_output_is_read()
    sys.exit(code)
