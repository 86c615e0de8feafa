"""maia's web demo as a Hugging Face Space (or locally: ``python app.py``, then http://127.0.0.1:7860).

The Space runtime runs this file from the repository root, so ``maia_hf`` is imported from this checkout
and serves the model shipped inside it (``MAIA_MODEL=DIR`` serves another saved model). Gradio reads
``GRADIO_SERVER_NAME`` and ``GRADIO_SERVER_PORT`` (a Space sets them). See docs/demo.md.
"""

import os

from maia_hf.demo import DemoLimits, build_demo, launch_demo

limits = DemoLimits()
demo = build_demo(os.environ.get("MAIA_MODEL"), limits)

if __name__ == "__main__":
    launch_demo(demo, host=None, limits=limits)
