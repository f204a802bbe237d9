FLASK_APP=authapp
