import argparse
import os

import joblib
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

from azureml.core import Dataset, Run

run = Run.get_context()
ws = run.experiment.workspace

parser = argparse.ArgumentParser()
parser.add_argument('--input-data', type=str)
parser.add_argument('--alpha', type=float, default=0.5)
args = parser.parse_args()

# the tabular dataset arrives as its id (direct mode); the file dataset in run.input_datasets
df = Dataset.get_by_id(ws, id=args.input_data).to_pandas_dataframe()
files = run.input_datasets['diabetes_files']
print('files mounted at', files, os.listdir(files))

X, y = df.drop('target', axis=1).values, df['target'].values
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
model = Ridge(alpha=args.alpha).fit(X_train, y_train)
mse = mean_squared_error(y_test, model.predict(X_test))
run.log('alpha', args.alpha)
run.log('mse', mse)
run.log('rows', len(df))

os.makedirs('outputs', exist_ok=True)
joblib.dump(model, 'outputs/ridge.pkl')
