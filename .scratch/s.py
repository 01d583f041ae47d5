import sqlalchemy as sa, sys
sys.path.insert(0, "../tests")
from test_redteam2_14 import write_revision, CREATE_USER, user_metadata, cli
from pathlib import Path
from flask import Flask
from flask_alembic import Alembic
m = Path("p/migrations")
write_revision(m, "r1.py", 'revision = "r1"\ndown_revision = None', CREATE_USER)
write_revision(m, "r2.py", 'revision = "r2"\ndown_revision = "r1"', f'op.drop_table("user", schema="main")\n    {CREATE_USER}')
e = sa.create_engine("sqlite:///p/x.db")
app = Flask("x", root_path=str(Path("p").resolve()))
Alembic(app, engines={"default": e}, metadatas={"default": user_metadata()})
print(cli(app, "upgrade", "r1").output)
r = cli(app, "upgrade"); print(r.exit_code, r.output)
r = cli(app, "current"); print(r.exit_code, r.output)
