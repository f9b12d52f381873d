# The two commands of README.md.
.PHONY: test demo

test:
	scripts/test-all

demo:
	scripts/demo
