"""Burn one core until killed (for the resource monitor's CPU test)."""
print("ready", flush=True)
while True:
    pass
