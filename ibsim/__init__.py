"""ibsim: a simulated IB Gateway speaking the TWS socket protocol (server version 157) on loopback."""

from ibsim.config import SimConfig
from ibsim.cost_profiles import CostContext, CostProfile, get_profile
from ibsim.market import Market
from ibsim.server import IbSim, build_market

__all__ = ["CostContext", "CostProfile", "IbSim", "Market", "SimConfig", "build_market", "get_profile"]
