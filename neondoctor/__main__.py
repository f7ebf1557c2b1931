from __future__ import annotations

from neondoctor.cli import main

if __name__ == "__main__":
    main()
