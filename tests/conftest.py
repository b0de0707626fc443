import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = os.path.join(ROOT, "spaces")
EXAMPLES = os.path.join(ROOT, "examples")
