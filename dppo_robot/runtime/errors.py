"""Errors of the inference runtime; each message names the bundle file, input or field at fault."""


class BundleError(ValueError):
    """A bundle that cannot be loaded: missing or tampered files, inconsistent manifest."""


class BundleMismatchError(BundleError):
    """A bundle whose spec does not match what the caller provides or expects."""


class ObservationError(ValueError):
    """An observation (or image) of the wrong shape or dtype, or with non-finite values."""


class ProviderError(ValueError):
    """An execution provider that was asked for but is not available in this onnxruntime build."""


class NonFiniteActionError(ValueError):
    """The graph produced NaN/inf actions (an input extreme enough to overflow inside it, or bad weights)."""


class ObservationRangeWarning(UserWarning):
    """An observation outside the manifest's normalisation range (widened by the runtime's margin)."""
