"""The quickstart: an interchange intervention and a collection on a small model built offline.

Run: python examples/quickstart.py  (the same job as `vene quickstart`).
"""

from vene._quickstart import main

if __name__ == "__main__":
    for line in main():
        print(line)
