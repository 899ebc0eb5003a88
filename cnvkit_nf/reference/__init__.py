"""References kept between jobs: a job whose pooled reference would be built from the same inputs
and options as an earlier one reuses it (`cache`).

May import `contract`, `state` and `storage`; never launch, service or the faces.
"""
