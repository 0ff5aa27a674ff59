"""ibsim: a simulated IB Gateway speaking the TWS socket protocol (server version 157) on loopback."""

from ibsim.config import SimConfig
from ibsim.market import Market
from ibsim.server import IbSim, build_market

__all__ = ["IbSim", "Market", "SimConfig", "build_market"]
