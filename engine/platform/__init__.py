"""The contact-center platform layer: the adapter protocol, the embedded simulator and the SCXML
event I/O processor through which flows talk to it (SPEC 5)."""

from .adapter import OUTCOME_CODES, OUTCOMES, Deliver, Platform, Position, QueueListener, QueueStats
from .config import DialRule, QueueConfig, SimulatorConfig, load_simulator_config
from .ioprocessor import PLATFORM_PROCESSOR, PlatformProcessor, host_deliverer, register
from .simulator import Simulator

__all__ = [
    "OUTCOMES",
    "OUTCOME_CODES",
    "PLATFORM_PROCESSOR",
    "Deliver",
    "DialRule",
    "Platform",
    "PlatformProcessor",
    "Position",
    "QueueConfig",
    "QueueListener",
    "QueueStats",
    "Simulator",
    "SimulatorConfig",
    "host_deliverer",
    "load_simulator_config",
    "register",
]
