"""The sampler's warning category: a request it adjusted or doubts rather than refused."""


class SamplerWarning(UserWarning):
    """A request the sampler adjusted rather than refused (a budget larger than the pool), or a setting
    that does not fit the data (an uncertainty measure that misreads the model's outputs)."""
