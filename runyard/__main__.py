from runyard.cli.main import app

app()
