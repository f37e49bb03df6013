from .cli import main

if __name__ == "__main__":  # not when a loader worker process re-imports the main module
    main()
