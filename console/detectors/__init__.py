"""Detectors the product relies on, shared by every place that scores an input: the lab
gateway, replay and (later) production gateways' sidecars. Pure numpy; no I/O.

``squeezing``   feature squeezing (Xu et al. 2018), the evasion detector's score
``extraction``  the PRADA-style extraction statistic (Juuti et al. 2019) per client
"""
