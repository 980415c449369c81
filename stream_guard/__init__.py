"""stream-guard: streaming anomaly detection and alerting for e-commerce platform governance.

Events → health metrics per window and slice → anomaly scores → alert episodes with root-cause
hints → alerts topic and Slack. See README.md for a tour and ../shared/DESIGN.md for the design.
"""

__version__ = "0.1.0"
