"""An HDInsight-like HTTPS gateway in front of any Livy, with fault injection (server.py),
a simulated Ambari (ambari.py) and a throwaway certificate authority (tls.py)."""

from .ambari import AmbariSim
from .server import AMBARI_PREFIX, LIVY_PREFIX, Gateway, Seen
from .tls import TlsFiles, make_tls

__all__ = ["Gateway", "Seen", "AmbariSim", "TlsFiles", "make_tls", "LIVY_PREFIX", "AMBARI_PREFIX"]
