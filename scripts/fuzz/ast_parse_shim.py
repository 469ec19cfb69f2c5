"""Works around CPython's gh-106905 in the fuzzer's interpreter: on 3.11 before 3.11.8,
`ast.parse` can raise `SystemError: AST constructor recursion depth mismatch` after the
recursion limit has been raised, which Hypothesis does. Hypothesis parses sources only to
describe lambdas in its messages and treats a `SyntaxError` as "source unknown", so the
failure becomes that instead of ending the run with a runtime error. Loaded by a `.pth` file
in the fuzzer's virtualenv only (scripts/fuzz-api)."""

import ast

_parse = ast.parse


def parse(source, *args, **kwargs):
    try:
        return _parse(source, *args, **kwargs)
    except SystemError as error:
        if "recursion depth mismatch" not in str(error):
            raise
        raise SyntaxError(f"CPython gh-106905: {error}") from error


ast.parse = parse
