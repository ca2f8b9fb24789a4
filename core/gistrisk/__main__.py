from gistrisk.cli import main

main()
