import argparse
import os

import joblib
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument('--C', type=float, default=1.0)
args = parser.parse_args()

run = Run.get_context()
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25,
                                                    random_state=int(os.environ['DIGITS_SEED']))
clf = SVC(C=args.C, gamma=0.001).fit(X_train, y_train)
run.log('C', args.C)
run.log('accuracy', clf.score(X_test, y_test))
run.log('run_id', os.environ['AZUREML_RUN_ID'])
os.makedirs('outputs', exist_ok=True)
joblib.dump(clf, 'outputs/model.pkl')
