"""The typed pieces a building block builds and the compiler wires together.

States and fragments of Amazon States Language (`asl`), IAM statements and policies (`iam`),
Athena statements and their templates (`sql`), CloudFormation resources (`cfn`), every AWS name
the pipeline gets (`names`), and what a block sees while it builds (`context`). Blocks
(`stepkit.steps`) import these; the compiler (`stepkit.compiler`) imports the blocks. Nothing
here imports a block, the compiler, an engine or boto3.
"""
