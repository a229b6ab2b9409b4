from netconsolectl.cli import main

main()
