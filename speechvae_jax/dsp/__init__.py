"""Signal processing shared by losses, models, teachers and metrics: STFT and mel (`spectral`), FIR
filters (`filters`), the constant-Q transform (`cqt`) and frame masks (`frames`)."""
