from stepkit.cli import main

main(prog_name="stepkit")
