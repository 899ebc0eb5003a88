"""What is kept between jobs: a job whose pooled reference would be built from the same inputs
and options as an earlier one reuses it (`cache`), and one whose accessible regions would be
computed from the same FASTA, access options and exclusion BEDs gets them (`access`); both keep
their entries in one entry store (`entries`).

May import `contract`, `state` and `storage`; never launch, service or the faces.
"""
