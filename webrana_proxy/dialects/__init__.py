"""Ingress dialects: each turns its wire format into the internal form (the OpenAI Chat shape every provider
translator speaks) and the internal form's answers back into its own. Pure and tested offline.

N ingress adapters + M provider translators, never N x M: a dialect never names a provider.
"""
