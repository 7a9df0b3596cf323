"""`pulumi up` entry point where a full Pulumi install (with its Python language host) runs the program. Here the
same program runs through `smtps`, which serves it to the engine with the Automation API."""

from smtps_iredmail.program import program

program()
