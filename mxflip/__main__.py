from mxflip.cli import main

main()
