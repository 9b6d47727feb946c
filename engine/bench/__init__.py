"""Every ``understudy bench`` measurement, each printing ratios measured side by side in one run.

- ``decode``: Understudy's turn against raw llama-cpp-python (tokens/s, time to first token, logging).
- ``discover``: discovery's purity and outliers, and held-out placement, on the shipped synthetic logs.
- ``loop``: the whole loop in a scratch data dir: teacher log in, discovery, tuning, routed answers.
- ``redact``: redaction precision and recall per type on the labelled set in resources/.
- ``route``: a routing decision's time against a real turn's time to first token.
- ``serve``: the gateway over HTTP against in process (tokens/s, ttft, 8 concurrent clients, router).
- ``swap``: switching a LoRA adapter on the loaded model against reloading the model.
- ``tools``: tool choice and argument accuracy on the labelled requests.
- ``train``: the packed LoRA trainer's tokens/s against a padded loop.
"""
