"""A tqdm-style progress bar redrawn with carriage returns, then a final line."""
import sys
import time

for i in range(0, 101, 10):
    sys.stdout.write(f"\rprogress {i:3d}% |{'#' * (i // 10):<10}|")
    sys.stdout.flush()
    time.sleep(0.005)
sys.stdout.write("\ndone\n")
