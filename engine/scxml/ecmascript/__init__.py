"""The ECMAScript datamodel (W3C SCXML B.2) on quickjs-ng: sandboxed, bounded, cheap when idle.

``kind`` compiles a document's expressions; ``data`` is one session's variables; ``codec`` and
``prelude`` carry values between Python and JavaScript; ``pool`` decides which sessions keep a
live context; ``sandbox`` builds contexts with their limits.
"""

from .kind import EcmaScriptDataModel
from .sandbox import SandboxLimits

__all__ = ["EcmaScriptDataModel", "SandboxLimits"]
