import time

with open("cleanup.log", "a") as f:
    f.write(f"cleaned {time.time()}\n")
print("temp files removed")
