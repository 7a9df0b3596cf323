"""Benchmarks on the lab (`make bench`, `bench-profile`, `bench-scale`, `bench-lab`, `bench-smtps`): they print numbers
and assert nothing, so they are not tests; pyinfra/deploy.py is the bar `make bench` compares with."""
