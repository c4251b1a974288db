"""Resource monitoring: CPU/RSS of run trees and of the system, sampled off the loop."""
