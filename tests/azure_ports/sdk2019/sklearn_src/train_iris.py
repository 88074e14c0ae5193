import argparse
import os

import joblib
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from azureml.core.run import Run

run = Run.get_context()

parser = argparse.ArgumentParser()
parser.add_argument('--kernel', type=str, default='linear')
parser.add_argument('--penalty', type=float, default=1.0)
args = parser.parse_args()
run.log('Kernel type', str(args.kernel))
run.log('Penalty', float(args.penalty))

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
svm_model = SVC(kernel=args.kernel, C=args.penalty, gamma='scale').fit(X_train, y_train)
accuracy = svm_model.score(X_test, y_test)
print('Accuracy of SVM classifier on test set: {:.2f}'.format(accuracy))
run.log('Accuracy', float(accuracy))

os.makedirs('outputs', exist_ok=True)
joblib.dump(svm_model, 'outputs/model.joblib')
